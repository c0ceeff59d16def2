"""Sources: where raw data comes from. ``base`` (the one interface ``elt load`` uses: ``StationSource``),
``airqino`` (the API client and the source declaration), ``archive`` (recorded responses) and ``rows``
(the validated row model)."""
