"""The slide canvas and what draws on it: tiles, layers, annotations, tools, the overview map."""
