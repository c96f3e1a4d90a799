from .cli import entry

if __name__ == "__main__":  # a spawned worker process re-imports the main module; it must not run the CLI
    entry()
