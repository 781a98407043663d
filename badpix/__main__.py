"""``python -m badpix`` runs the command-line interface."""

from badpix.cli import main

if __name__ == "__main__":
    main()
