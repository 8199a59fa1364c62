"""moesearch's Streamlit app: ``streamlit run app/main.py``.

Pages (``app/views/``) read widgets, call the indexer through the one cached ``Service`` (``app.service``) and
render with ``app.render``; ``app.auth`` guards the admin page.
"""
