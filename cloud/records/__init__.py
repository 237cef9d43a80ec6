"""Patient records at rest: the patient index (``patients``: one subject per person, merges)
and the encryption of national ID numbers and names with their blind index (``crypto_at_rest``)."""
