"""Grid-search commands (grid, show, export, plot, report); registered on the ``fastmlp`` group by cli.py."""

GRID_COMMANDS = []
