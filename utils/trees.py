"""Nested config dicts seen as dotted keys: {'train': {'lr': 1}} <-> 'train.lr'."""
from __future__ import annotations


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'a.b': value} for every leaf (a value that is not a dict) of a nested dict."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def set_dotted(tree: dict, dotted: str, value) -> None:
    """tree['a']['b'] = value for 'a.b', making the sections that are missing."""
    *sections, leaf = dotted.split(".")
    for section in sections:
        tree = tree.setdefault(section, {})
    tree[leaf] = value
