"""Benchmarks of airqino-elt against the seed approach (W1..W5); ``python -m bench`` runs them all.

Scripts print JSON (server, sizes, wall and CPU seconds, peak RSS); see ``bench/run_all.py`` and
``docs/performance.md``. Benchmarks are not tests: nothing here is collected by pytest.
"""
