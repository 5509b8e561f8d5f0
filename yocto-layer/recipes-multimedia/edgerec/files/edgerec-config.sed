# meta-edgerec: turns config/edgerec.example.toml, whose paths are the generic unit's
# /var/lib/edgerec, into the appliance's /etc/edgerec/edgerec.toml, where everything lives in
# the data directory. The recipe substitutes @EDGEREC_DATA_DIR@; .ci/appliance-checks.sh runs
# this same script over the example config and checks the result.
#
# [server] data_dir, whatever the example says.
/^\[server\]/,/^\[/ s#^\([[:space:]]*data_dir[[:space:]]*=[[:space:]]*\).*#\1"@EDGEREC_DATA_DIR@"#
# Any other quoted path in /var/lib/edgerec (storage paths), kept relative to the data directory.
s#"/var/lib/edgerec\([/"]\)#"@EDGEREC_DATA_DIR@\1#g
