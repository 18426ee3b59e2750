"""Entry point of the render child process: ``python -m attendwise.letters.render_child <bytes>``."""

import sys

from attendwise.letters.render import child_main

if __name__ == "__main__":
    child_main(int(sys.argv[1]))
