# Sourced by the HTTP benchmarks (bash): loopback port helpers and nginx
# serving a static body, the ceiling ladle's server is compared with.
# The caller sets $work (a private temp dir) and $NGINX, and kills $nginx_pid.

free_port() {  # the first port from $1 on that nothing answers on
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

wait_listening() {  # port
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# Starts nginx (one worker, no access log, a private config under $work)
# answering every request with BODY; sets nginx_pid. Usage: start_nginx PORT BODY
start_nginx() {
  local port=$1 body=$2
  mkdir -p "$work/nginx"
  cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$port;
    location / {
      default_type application/json;
      return 200 '$body';
    }
  }
}
CONF
  "$NGINX" -e "$work/nginx/error.log" -c "$work/nginx.conf" &
  nginx_pid=$!
  wait_listening "$port"
}
