"""The paper's tasks: data, models around the dense/TT/BT input maps, losses, metrics and previews."""
