#!/usr/bin/env python3
"""moto as the AWS side of tests/detach.rs: Auto Scaling, EC2, IAM and STS on 127.0.0.1.

Starts moto's server in this process on a free port of 127.0.0.1, creates an administrator
(IAM user with an allow-everything policy and an access key), then turns moto's IAM access
control on (/moto-api/reset-auth 0): from then on every request must carry a valid SigV4
signature (moto recomputes it with botocore) of a known access key whose policies allow the
action, or it gets SignatureDoesNotMatch / InvalidClientTokenId / AccessDenied, as AWS would.

Then reads one JSON command per line on stdin and answers one JSON line on stdout, using the
administrator's keys. Exits when stdin closes (the test process ended), stopping the server.

Commands:
  {"op": "group", "name": N}                 -> {"instance": id, "desired": 1}
      a launch template and an Auto Scaling group N (min 1, max 3, desired 1) in us-east-1a
  {"op": "user", "name": N, "actions": [..]} -> {"key": id, "secret": s}
      an IAM user allowed exactly those actions on any resource
  {"op": "role", "name": N, "actions": [..]} -> {"arn": arn}
      a role any web identity may assume, allowed exactly those actions
  {"op": "assume", "name": N, "actions": [..]} -> {"key": id, "secret": s, "token": t}
      temporary credentials (STS AssumeRole by the administrator) of a role allowed exactly
      those actions: what the instance profile and Pod Identity hand out
  {"op": "state", "group": N, "instance": I} -> {"in_group": b, "desired": n, "instances": [..],
                                                 "groups_of_instance": [..]}
  {"op": "instance"}                          -> {"instance": id}: an EC2 instance in no group
"""
import json
import sys
import urllib.request

import boto3
from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import ThreadedMotoServer

REGION = "us-east-1"

# AWS takes AssumeRoleWithWebIdentity unsigned (the token is the credential); moto's access
# control would refuse it (HTTP 500 on the missing Authorization header). Let it through, as AWS.
_authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _unsigned_sts(self, iam_request_cls, resource="*"):
    if self._get_action() == "AssumeRoleWithWebIdentity" and "Authorization" not in self.headers:
        return None
    return _authenticate(self, iam_request_cls, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_action = _unsigned_sts


def main():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"

    def client(service, key="testing", secret="testing"):
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )

    iam = client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(
        UserName="admin",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    k = iam.create_access_key(UserName="admin")["AccessKey"]
    admin = (k["AccessKeyId"], k["SecretAccessKey"])
    # From here on, moto checks signatures and policies.
    req = urllib.request.Request(
        f"{url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(req, timeout=10).read()

    asg = client("autoscaling", *admin)
    sts = client("sts", *admin)
    ec2 = client("ec2", *admin)
    iam = client("iam", *admin)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def policy(actions):
        return json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        )

    def handle(cmd):
        op = cmd["op"]
        if op == "group":
            name = cmd["name"]
            ec2.create_launch_template(
                LaunchTemplateName=f"lt-{name}",
                LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"},
            )
            asg.create_auto_scaling_group(
                AutoScalingGroupName=name,
                LaunchTemplate={"LaunchTemplateName": f"lt-{name}", "Version": "$Latest"},
                MinSize=1,
                MaxSize=3,
                DesiredCapacity=1,
                AvailabilityZones=[f"{REGION}a"],
            )
            g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
            return {"instance": g["Instances"][0]["InstanceId"], "desired": g["DesiredCapacity"]}
        if op == "instance":
            r = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large")
            return {"instance": r["Instances"][0]["InstanceId"]}
        if op == "user":
            iam.create_user(UserName=cmd["name"])
            iam.put_user_policy(UserName=cmd["name"], PolicyName="p", PolicyDocument=policy(cmd["actions"]))
            k = iam.create_access_key(UserName=cmd["name"])["AccessKey"]
            return {"key": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
        if op == "role":
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.test"},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                    }
                ],
            }
            r = iam.create_role(RoleName=cmd["name"], AssumeRolePolicyDocument=json.dumps(trust))
            iam.put_role_policy(RoleName=cmd["name"], PolicyName="p", PolicyDocument=policy(cmd["actions"]))
            return {"arn": r["Role"]["Arn"]}
        if op == "assume":
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:user/admin"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            r = iam.create_role(RoleName=cmd["name"], AssumeRolePolicyDocument=json.dumps(trust))
            iam.put_role_policy(RoleName=cmd["name"], PolicyName="p", PolicyDocument=policy(cmd["actions"]))
            c = sts.assume_role(RoleArn=r["Role"]["Arn"], RoleSessionName="node")["Credentials"]
            return {"key": c["AccessKeyId"], "secret": c["SecretAccessKey"], "token": c["SessionToken"]}
        if op == "state":
            g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[cmd["group"]])["AutoScalingGroups"][0]
            ids = [i["InstanceId"] for i in g["Instances"]]
            of = asg.describe_auto_scaling_instances(InstanceIds=[cmd["instance"]])["AutoScalingInstances"]
            return {
                "in_group": cmd["instance"] in ids,
                "desired": g["DesiredCapacity"],
                "instances": ids,
                "groups_of_instance": [i["AutoScalingGroupName"] for i in of],
            }
        raise ValueError(f"unknown op {op!r}")

    print(json.dumps({"port": port, "url": url}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = handle(json.loads(line))
        except Exception as e:  # reported to the test, which fails with it
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
    server.stop()


if __name__ == "__main__":
    main()
