#!/bin/sh
# "Compiles" the demo application: prints a small shell program.
if [ "$1" = "--help" ]; then
  echo "app NAME: greets NAME. Built by ladle's demo pipeline."
  exit 0
fi
cat <<'APP'
#!/bin/sh
# The demo application: greets its argument.
name=${1:-world}
printf 'hello, %s\n' "$name"
APP
echo "compiled at $(date -u +%H:%M:%S)" >&2
