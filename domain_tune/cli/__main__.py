"""``python -m domain_tune.cli``: the same as the ``domain-tune`` command."""

from domain_tune.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
