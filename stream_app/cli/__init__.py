"""The ``streamrec`` command line: :mod:`.main` assembles one module per command group."""
