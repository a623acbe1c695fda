"""The assessment: config -> planned scenarios -> executor -> report (HTML and JSON).

Scenario families are plug-ins (:mod:`sparring.assess.families`); everything else here is
derived from them.
"""

from sparring.assess.config import AssessConfig, load_config, parse_config
from sparring.assess.report import build_report
from sparring.assess.run import assess

__all__ = ["AssessConfig", "assess", "build_report", "load_config", "parse_config"]
