"""Projects: many slides of a study, each with what SlideLens knows of it.  Qt-free.

``model`` (:class:`~viewer.projects.model.Project`, the slides and their states, with
events), ``storage`` (the project file), ``recent`` (recently opened projects), ``facts``
(what a slide file says about itself, read off the GUI thread) and ``paging`` (layer
settings carried from one slide to the next).  Modules import each other by their own
path, never through this ``__init__``.
"""
