"""Writing and reading files safely: atomic writes of files and directories, checksummed
files, locks, JSON descriptions of objects, and the allow-list of what a saved file may name."""
