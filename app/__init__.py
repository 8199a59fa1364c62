"""moesearch's Streamlit app: ``python -m app.server`` (``scripts/run.sh``) serves ``app/main.py``.

Pages (``app/views/``) read widgets, call the indexer through the one cached ``Service`` (``app.service``) and
render with ``app.render``; ``app.auth`` guards the admin page (``app.session``: its session tokens,
``app.throttle``: who signs in and how often they failed, ``app.server``: the cookie route), ``app.settings``
holds the app's own settings.
"""
