"""``picscore report``: an audit at a glance, as one self-contained HTML page.

The pipeline is small pure steps over columns, so a million-row results file stays well under
a minute and a few hundred MB:

* :mod:`.columns` reads results files (any format, several shards) into compact columns;
* :mod:`.summary` turns them into the page's aggregates (totals, histograms, prefixes, defects,
  worst and best, failures); :mod:`.night` compares two nights;
* :mod:`.thumbnails` fetches a bounded number of small thumbnails through the OSS API;
* :mod:`.charts` draws inline SVG and :mod:`.page` renders the template.
"""
