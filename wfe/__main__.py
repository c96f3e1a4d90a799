from wfe.cli import entry

entry()
