"""Reports a person looks at: the ``--html`` page (``html.py``, templates in ``templates/``)."""
