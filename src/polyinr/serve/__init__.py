"""The web viewer (``polyinr serve``): an ASGI app (:mod:`polyinr.serve.app`) over batched, cached tile rendering
(:mod:`polyinr.serve.tiles`) and a static page shipped in ``static/`` (plain HTML, CSS and JavaScript)."""
