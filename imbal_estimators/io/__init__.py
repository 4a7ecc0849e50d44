"""Writing and reading files safely: atomic writes and JSON descriptions of objects."""
