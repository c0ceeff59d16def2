"""One hourly run: lease (``lock``), run log (``runlog``), window (``window``), the steps (``steps``), the
orchestration (``task``), the offline demo (``demo``) and the one-screen summary (``summary``)."""
