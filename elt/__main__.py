"""Allow ``python -m elt``."""

from elt.cli import main

if __name__ == "__main__":
    main()
