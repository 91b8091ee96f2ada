"""Media from S3 buckets: the hma_s3_source plugin.

Registered as a plugin already so deployments can block or list it by name; the S3 content
source, its bucket-event endpoint and its SQS listener arrive with the S3 issue.
"""
