"""Sphinx configuration: the PyData theme, numpydoc, myst and myst-nb.

    pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html

The notebooks are rendered with the outputs they were saved with (scripts/run_notebooks.py),
not executed again; the API reference is generated from the docstrings.
"""

import sys
from pathlib import Path

import gpubp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures  # noqa: E402  (docs/figures.py)

project = "gpubp"
author = "the gpubp developers"
copyright = "2026, the gpubp developers"
release = version = gpubp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served with the pages: math renders offline too
    "numpydoc",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
html_static_path = ["_static"]

html_theme = "pydata_sphinx_theme"
html_title = "gpubp"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    # an API page's members are long names: its width goes to the text instead
    "secondary_sidebar_items": {
        **{pattern: ["page-toc", "sourcelink"] for pattern in ("*", "guide/*", "notebooks/*")},
        "generated/*": [],
    },
}
html_sidebars = {page: [] for page in ("index", "getting-started", "equations", "performance")}

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the tests execute the notebooks; the pages show their saved outputs

autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Every parameter of the public API documented, and none documented that is not there.
numpydoc_validation_checks = {"PR01", "PR02", "GL08"}

# The members each class's page documents; a class not named here documents all its
# public members, inherited ones included (the estimators' scikit-learn methods).
autosummary_context = {
    "documented_members": {
        "MLP": ["forward", "compute_loss", "loss_and_gradients", "backprop", "get_weights",
                "set_weights", "J"],
        "Backend": [],
        "Backprop": [],
        "GradcheckResult": [],
    },
    # scikit-learn's metadata-routing methods: its own documentation describes them
    "excluded_members": ["get_metadata_routing", "set_fit_request", "set_partial_fit_request",
                         "set_score_request"],
}


def setup(app):
    app.connect("builder-inited", lambda app: figures.draw_all())
