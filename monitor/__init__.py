"""monitor: watch feeds and document folders, match articles against YAML watchlists, alert once."""

__version__ = "0.1.0"
