"""The application layer: the command line, ``compare``, the report and its plots."""
