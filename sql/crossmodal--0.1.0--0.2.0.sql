-- crossmodal--0.1.0--0.2.0.sql: ALTER EXTENSION crossmodal UPDATE from 0.1.0 to 0.2.0.
-- Every object that 0.2.0 adds or changes relative to 0.1.0, in the order the
-- install script (sql/install_parts/) creates them.

\echo Use "ALTER EXTENSION crossmodal UPDATE TO '0.2.0'" to load this file. \quit
