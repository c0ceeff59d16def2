// First start of the mongo:7 container only (docker-entrypoint-initdb.d, run as the root user):
// the `elt` user, read-write on the project's database and nothing else. Password from .env.
const database = process.env.ELT_DATABASE || "airqino";
db.getSiblingDB(database).createUser({
  user: "elt",
  pwd: process.env.ELT_MONGO_PASSWORD,
  roles: [{ role: "readWrite", db: database }],
});
