"""Acting on scores: the shared act phase of picscore covers and picscore filter."""
