-- One database per service (docker-compose); the local stack's postgres.sh does the same.
CREATE DATABASE wallet;
CREATE DATABASE catalog;
CREATE DATABASE "order";
CREATE DATABASE coupon;
CREATE DATABASE payment;
CREATE DATABASE analytics;
