"""The assessment: config -> planned scenarios -> executor -> report (HTML and JSON)."""

from sparring.assess.config import AssessConfig, load_config, parse_config
from sparring.assess.run import assess, build_report

__all__ = ["AssessConfig", "assess", "build_report", "load_config", "parse_config"]
