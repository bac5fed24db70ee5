-- One Postgres, three databases: Prefect's, the Iceberg catalog's and Label Studio's.
CREATE DATABASE prefect;
CREATE DATABASE iceberg;
CREATE DATABASE labelstudio;
