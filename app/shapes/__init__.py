"""What the Shapes page needs beyond widgets.

* :mod:`.inputs` - the page's inputs as fields and the typed modes and ranks as a configuration.
* :mod:`.session` - the widget callbacks and what the page keeps in the session beyond its inputs.
* :mod:`.charts` - the parameters-vs-rank and BT heatmap figures.
* :mod:`.tables` - the formats table as shown and as downloaded (CSV of numbers), and the planner's choice.
* :mod:`.formulas` - the parameter formulas (BT, TT, TR, dense) in LaTeX with the configuration's numbers.
"""
