"""The bundled demo models: synthetic training data, training, evaluation and their cards."""
