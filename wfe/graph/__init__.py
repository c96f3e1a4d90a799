"""The workflow: its model, loading it from YAML/JSON, functions and their versions, codecs, MIME types."""
