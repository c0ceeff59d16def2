// Replica-set profile: the healthcheck of mongo-rs0, run inside its container (mongosh on localhost), so the
// localhost exception lets it initiate the set and create the first users; idempotent, every 10 s:
//   not initiated          -> rs.initiate(rs0, rs1, rs2), unhealthy for now
//   initiated, no user yet -> once rs0 is primary: the root user and the `elt` user (readWrite on the
//                             project's database only, as create-elt-user.js does for the standalone server)
//   users exist            -> healthy when the member answers ping (unauthenticated status is refused then)
const admin = db.getSiblingDB("admin");
const status = admin.runCommand({ replSetGetStatus: 1 });
if (status.ok !== 1 && status.code === 94) { // NotYetInitialized
  rs.initiate({
    _id: "rs0",
    members: [
      { _id: 0, host: "mongo-rs0:27017", priority: 2 },
      { _id: 1, host: "mongo-rs1:27017", priority: 1 },
      { _id: 2, host: "mongo-rs2:27017", priority: 1 },
    ],
  });
  quit(1);
}
if (status.ok !== 1 && status.code === 13) { // Unauthorized: the users exist, the set is configured
  quit(admin.runCommand({ ping: 1 }).ok === 1 ? 0 : 1);
}
if (!db.hello().isWritablePrimary) quit(1); // election in progress
const database = process.env.ELT_DATABASE || "airqino";
admin.createUser({
  user: process.env.MONGO_INITDB_ROOT_USERNAME || "root",
  pwd: process.env.MONGO_INITDB_ROOT_PASSWORD,
  roles: [{ role: "root", db: "admin" }],
}, { w: "majority" });
admin.auth(process.env.MONGO_INITDB_ROOT_USERNAME || "root", process.env.MONGO_INITDB_ROOT_PASSWORD);
db.getSiblingDB(database).createUser({
  user: "elt",
  pwd: process.env.ELT_MONGO_PASSWORD,
  roles: [{ role: "readWrite", db: database }],
}, { w: "majority" });
quit(1); // healthy from the next check on
