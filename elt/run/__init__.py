"""One hourly run: lease (``lock``), run log (``runlog``), window (``window``), the steps (``steps``), the
orchestration (``task``), the offline demo (``demo``) and the one-screen summary (``summary``)."""

#: The steps of a run, in order (here, not in ``runlog``, so the CLI can list them without importing pymongo).
STEP_NAMES: tuple[str, ...] = ("load", "transform", "test", "forecast", "publish")
