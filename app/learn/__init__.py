"""What the Learn page needs beyond widgets.

* :mod:`.content` - the specs, examples, fields and text the page draws from the configuration.
* :mod:`.charts` - the tensor-network diagrams and other figures of the page.
"""
