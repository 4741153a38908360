#!/bin/sh
# Regenerates the simulator's checked-in test PKI (never use these keys for anything real).
#
#   ca.crt / ca.key              test CA ("stnh-sim test CA"); copied into the service-account dir as ca.crt
#   server.crt / server.key      kube-apiserver cert signed by ca: SAN IP:127.0.0.1, DNS:localhost
#   dns-only.crt / dns-only.key  signed by ca, SAN DNS:localhost only (for "IP SAN missing" tests)
#   other-ca.crt / other-ca.key  an unrelated CA (for "wrong CA" tests)
#   untrusted.crt / untrusted.key  signed by other-ca, SAN IP:127.0.0.1, DNS:localhost (webhook
#                                sinks whose certificate no client trusts: a TLS failure)
#
# EC P-256 keys in PKCS#8 ("BEGIN PRIVATE KEY"), valid for ~100 years.
# Usage: sh sim/pki/regen.sh   (needs the openssl CLI)
set -eu
cd "$(dirname "$0")"
DAYS=36500
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

ca() { # name CN
    newkey "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.crt" -days "$DAYS" -sha256 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash"
}

leaf() { # name CN SAN [CA]
    CA=${4:-ca}
    newkey "$1.key"
    openssl req -new -key "$1.key" -out "$TMP/$1.csr" -subj "/CN=$2"
    cat >"$TMP/$1.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$3
authorityKeyIdentifier=keyid
subjectKeyIdentifier=hash
EXT
    openssl x509 -req -in "$TMP/$1.csr" -CA "$CA.crt" -CAkey "$CA.key" -CAserial "$TMP/$CA.srl" -CAcreateserial \
        -out "$1.crt" -days "$DAYS" -sha256 -extfile "$TMP/$1.ext"
}

ca ca "stnh-sim test CA"
ca other-ca "stnh-sim unrelated CA"
leaf server kube-apiserver "IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc"
leaf dns-only kube-apiserver-dns-only "DNS:localhost"
leaf untrusted webhook-untrusted "IP:127.0.0.1,DNS:localhost" other-ca
chmod 644 ./*.key ./*.crt
echo "regenerated test PKI in $(pwd)"
