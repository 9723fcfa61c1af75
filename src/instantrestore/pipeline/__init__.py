"""Whole photos: personal albums, matching faces to people, reference strength, folder jobs
(planning, resume, provenance) and sharding across processes."""
