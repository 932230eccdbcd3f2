"""Controllers that connect the window's menus and panels to models and workers."""
