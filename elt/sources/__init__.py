"""Sources: where raw data comes from. ``airqino`` (the API client and the source declaration) and ``rows``
(the validated row model)."""
