"""The Spark job's entry for `spark-submit` (docs/deploy.md, "The Spark job on a cluster"):

    spark-submit --master yarn ... "$(python -c 'import placeharm.cli.spark_submit as m;
    print(m.__file__)')" PATH... --areas SET=FILE... --out DIR

runs `placeharm spark ingest PATH... --areas ... --out DIR` under the master spark-submit
sets (give no --master here)."""

from __future__ import annotations

import sys

from placeharm.cli.main import main

if __name__ == "__main__":
    sys.argv = ["placeharm", "spark", "ingest", *sys.argv[1:]]
    main()
