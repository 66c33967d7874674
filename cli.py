"""Run the fastmlp command line from a checkout: ``python cli.py --help`` (installed, the command is ``fastmlp``)."""
from fastmlp.cli import main

if __name__ == "__main__":
    main()
