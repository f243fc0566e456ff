# Sourced by bench/graphhash.sh and bench/louvain_scale.sh (not a benchmark):
# sets MOVIELENS to ../shared/data/movielens.csv, or makes it from Debian's
# r-cran-dslabs (see ../shared/data/README.md) into a cache directory.
movielens_csv() {
  local shared="$MOEREC_ROOT/../shared/data/movielens.csv"
  if [ -f "$shared" ]; then MOVIELENS=$shared; return; fi
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/moerec/data"
  MOVIELENS=$cache/movielens.csv
  [ -f "$MOVIELENS" ] && return
  mkdir -p "$cache"
  echo "movielens: making $MOVIELENS from r-cran-dslabs" >&2
  command -v Rscript >/dev/null || apt-get install -y r-base-core r-cran-dslabs >&2
  Rscript -e 'e<-new.env();lazyLoad("/usr/lib/R/site-library/dslabs/data/Rdata",envir=e);write.csv(e$movielens,commandArgs(TRUE)[1],row.names=FALSE)' "$MOVIELENS" >&2
}
