"""The Format study page's back end: inputs, data sources, the plan, the worker, charts and views."""
