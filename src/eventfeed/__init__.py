"""eventfeed: compile event records kept in git into calendars, news feeds and a static site."""

__version__ = "0.1.0"
