#!/usr/bin/env bash
# Builds the Java clients of tests/java against the Apache Kafka Java client (jars from the Maven
# package registry, cached outside the clone) and prints the classpath to run them with.
# Needs Java 17 and Maven (for the tests only, not for running meshline).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${MESHLINE_JAVA_CACHE:-$HOME/.cache/meshline-java}"
mkdir -p "$cache/classes"
if [ ! -f "$cache/libs.done" ] || [ tests/java/pom.xml -nt "$cache/libs.done" ]; then
  rm -rf "$cache/libs"
  mvn -q -B -f tests/java/pom.xml dependency:copy-dependencies -DoutputDirectory="$cache/libs" >&2
  touch "$cache/libs.done"
fi
javac -nowarn -d "$cache/classes" -cp "$cache/libs/*" tests/java/*.java >&2
echo "$cache/classes:$cache/libs/*"
