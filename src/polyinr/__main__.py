"""``python -m polyinr`` (and ``torchrun -m polyinr train …``)."""

from polyinr.cli import main

if __name__ == "__main__":
    main()
