"""``dsphnf survey``: fit the classical dwarfs one by one and put the numbers beside the literature.

:func:`survey_spec` parses the settings (galaxies of :mod:`dsphnf.galaxies`,
methods, the systematics switches of :class:`SurveyOptions`); :func:`survey`
runs one task per galaxy and method through :func:`dsphnf.executor.run_grid`
(resumable) and writes ``survey.ecsv`` (with units) and ``survey.csv``;
:mod:`~dsphnf.survey.literature` holds the published values and
:mod:`~dsphnf.survey.report` the pulls, the figure and the text summary.
"""
from .literature import LITERATURE, Published, published, pull
from .quantities import QUANTITIES, band
from .report import comparison, format_survey, plot_literature, write_comparison
from .run import Survey, failed, survey, survey_catalog, survey_task
from .spec import SurveyError, SurveyOptions, SurveySpec, survey_spec
from .table import COLUMNS, read_table, write_table

__all__ = ["survey_spec", "survey", "survey_task", "survey_catalog", "Survey", "SurveySpec", "SurveyOptions",
           "SurveyError", "failed", "LITERATURE", "Published", "published", "pull", "comparison", "write_comparison",
           "plot_literature", "format_survey", "COLUMNS", "QUANTITIES", "band", "read_table", "write_table"]
