from liteship.cli import entrypoint

entrypoint()
