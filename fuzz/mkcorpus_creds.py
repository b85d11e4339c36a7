#!/usr/bin/python3
"""Write the seed corpus of fuzz_creds (fuzz/corpus/creds/), byte for byte
the same every time: a selector byte (see fuzz/fuzz_creds.c) then the
input of that parser: real-shaped IMDS, container, credential_process and
STS answers, good and broken, times, shell words and container URIs.

    /usr/bin/python3 fuzz/mkcorpus_creds.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "creds")

IMDS = json.dumps({"Code": "Success", "LastUpdated": "2024-01-01T00:00:00Z",
                   "Type": "AWS-HMAC", "AccessKeyId": "ASIAEXAMPLE000000001",
                   "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLE",
                   "Token": "IQoJb3JpZ2luX2VjE" * 20,
                   "Expiration": "2024-01-01T06:00:00Z"}, indent=2)
CONTAINER = json.dumps({"AccessKeyId": "ASIAEXAMPLE000000002",
                        "SecretAccessKey": "secret/+x", "Token": "tok==",
                        "Expiration": "2024-01-01T06:00:00.123Z",
                        "RoleArn": "arn:aws:iam::1:role/r"})
PROCESS = json.dumps({"Version": 1, "AccessKeyId": "AKIAEXAMPLE",
                      "SecretAccessKey": "s", "SessionToken": "t",
                      "Expiration": "2024-01-01T06:00:00+00:00"})
STS = ("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com"
       "/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials>"
       "<SessionToken>FwoGZXIvYXdzE==</SessionToken><SecretAccessKey>"
       "abc/def</SecretAccessKey><Expiration>2024-01-01T01:00:00Z"
       "</Expiration><AccessKeyId>ASIAEXAMPLE000000003</AccessKeyId>"
       "</Credentials></AssumeRoleWithWebIdentityResult>"
       "</AssumeRoleWithWebIdentityResponse>")
STS_ERR = ("<ErrorResponse><Error><Type>Sender</Type><Code>"
           "InvalidIdentityToken</Code><Message>m</Message></Error>"
           "</ErrorResponse>")

SEEDS = {
    "imds-ok": (0, IMDS),
    "imds-failed": (0, IMDS.replace("Success", "Failed")),
    "container-ok": (1, CONTAINER),
    "container-nested": (1, '{"a":{"AccessKeyId":[1,{"b":null}]},'
                         '"Token":null}'),
    "process-ok": (2, PROCESS),
    "process-noexp": (2, '{"Version":1,"AccessKeyId":"A","SecretAccessKey":'
                      '"S"}'),
    "sts-ok": (3, STS),
    "sts-error": (3, STS_ERR),
    "sts-doctype": (3, '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'),
    "time-z": (4, "2024-02-29T23:59:59Z"),
    "time-offset": (4, "2024-01-01T01:00:00.5+01:00"),
    "argv": (5, "'/opt/my tool' --a \"b \\\" c\" d\\ e 'f''g'"),
    "argv-bad": (5, "tool 'open"),
    "uri-loopback": (6, "http://127.0.0.1:8080/v2/creds"),
    "uri-ipv6": (6, "http://[fd00:ec2::23]/v1/x"),
    "uri-bad": (6, "http://example.com/x"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (sel, text) in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([sel]) + text.encode())


if __name__ == "__main__":
    main()
